"""runs record their box's price per hour and GPU count (cost per run and per experiment)

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_per_hour', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('gpus', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('gpus')
        batch_op.drop_column('price_per_hour')
